"""Cost models for schedule search (the learned XGBoost model arrives with the auto-scheduler)."""

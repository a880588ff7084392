import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    """Where the model zoo's ONNX exports go for this test session."""
    return tmp_path_factory.mktemp("zoo")

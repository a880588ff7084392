"""Default schedules per kernel kind and the lowering of fused groups to loop nests."""

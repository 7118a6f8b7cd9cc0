"""`rtim dev`: the whole product on one machine, watched and reported."""

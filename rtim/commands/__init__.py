"""One module per `rtim` command; each defines `register(app)`."""

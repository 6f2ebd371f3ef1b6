"""One module per `blurtrack` subcommand."""

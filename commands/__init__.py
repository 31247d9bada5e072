"""The leaves behind ./run.sh's subcommands: parse the arguments, call the engine, print. Nothing imports them."""

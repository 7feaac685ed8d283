"""``python -m dispatcher.cli``: the command line without the installed script; the demo and the tests
start worker processes this way, with the interpreter that runs them."""

from dispatcher.cli import main

if __name__ == "__main__":
    main()

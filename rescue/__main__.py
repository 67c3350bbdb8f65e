"""`python -m rescue <command>`."""

from rescue.cli import main

if __name__ == "__main__":
    main()

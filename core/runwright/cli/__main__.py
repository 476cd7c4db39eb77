"""``python -m runwright.cli``."""

from runwright.cli import main

if __name__ == "__main__":
    main()

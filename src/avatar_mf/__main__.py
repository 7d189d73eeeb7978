"""``python -m avatar_mf``: the same as the ``avatar-mf`` command."""

from avatar_mf.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

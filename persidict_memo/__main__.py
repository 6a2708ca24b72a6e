"""``python -m persidict_memo``: the ``persidict-memo`` command line (see :mod:`.cli`)."""

from persidict_memo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

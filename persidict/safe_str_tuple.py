"""Where persidict 0.309 defined its key classes.

Values that 0.309 pickled (or jsonpickled) with a key inside them name
``persidict.safe_str_tuple.SafeStrTuple``; this alias lets them load unchanged. New code imports
the classes from :mod:`persidict`.
"""

from .keys import NonEmptySafeStrTuple, SafeStrTuple

__all__ = ["NonEmptySafeStrTuple", "SafeStrTuple"]

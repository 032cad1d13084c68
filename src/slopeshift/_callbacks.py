"""Numba helpers of the generated C callbacks (:mod:`slopeshift.compiled`).

They live in a module of their own, imported by every generated wrapper, so that Numba's
on-disk cache of a wrapper never depends on code that is generated anew.
"""

from __future__ import annotations

from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["address_as_void_pointer"]


@intrinsic
def address_as_void_pointer(typingctx, src):
    """A void pointer from a memory address held in an unsigned integer."""
    sig = types.voidptr(src)

    def codegen(cgctx, builder, sig, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen

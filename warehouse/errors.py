"""Errors the warehouse raises with a message meant for the user, one line each."""


class WarehouseError(Exception):
    """A problem with the warehouse file the user can act on (locked, too new, missing...)."""


class WarehouseBusyError(WarehouseError):
    """Another process kept the file locked for longer than the caller was willing to wait."""

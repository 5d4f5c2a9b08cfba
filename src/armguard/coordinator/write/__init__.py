"""The write loop, one concept a module: ``read`` the live state, ``decide`` per job (with the
three-way ``rebase``), ``plan`` the writes, send them and ``follow`` their operations,
``recover`` by class, ``verify`` against submission order; ``session`` is the plumbing they
share and ``batch`` runs a claimed batch through them. The proxy reuses the pure steps."""

from armguard.coordinator.write.batch import BatchWriter
from armguard.coordinator.write.session import BatchReport, WriterSettings

__all__ = ["BatchReport", "BatchWriter", "WriterSettings"]

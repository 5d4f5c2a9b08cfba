"""armguard: conflict-safe concurrent writes to Azure Resource Manager, proven locally."""

__version__ = "0.1.0"

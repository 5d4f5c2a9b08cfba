"""Thin commands over the emulator, coordinator and diagnostics."""

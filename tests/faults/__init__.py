"""Fault-injection tests (a package so that the stack fixture ends with this folder)."""

"""The ground floor: errors, settings, file I/O, redaction, progress and every table/column name.

Everything imports it; it imports nothing of ours (an import-linter contract).
"""

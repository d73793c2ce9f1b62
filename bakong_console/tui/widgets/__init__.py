"""Widgets of the console: the header, the status bar, the payments table, the KHQR code, totals."""

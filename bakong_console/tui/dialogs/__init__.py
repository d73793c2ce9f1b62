"""Modal dialogs: resolve with a reason, confirm a cancel, show a QR, show an unexpected error."""

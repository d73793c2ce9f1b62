"""Modal dialogs: resolve with a reason, confirm a cancel, show a QR, close a day (Z report), show an unexpected error."""

"""One module per step; each reads as a short sequence of named reconciles over live state."""

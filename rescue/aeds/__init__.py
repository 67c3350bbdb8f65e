"""The AED inventory: registry, import/export, maintenance report and the in-memory index."""

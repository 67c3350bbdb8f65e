"""Remote guidance: one session per incident, shared by the dispatcher and the responders."""

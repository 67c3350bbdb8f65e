"""Dispatch: alerts, the planner, incidents, escalation, callbacks to 120, guidance, reports."""

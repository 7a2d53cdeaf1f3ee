"""Alerts: rules over the marts decide, the lifecycle keeps marts.alerts, delivery tells people."""

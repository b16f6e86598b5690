"""The staff desk: operator, supervisor and case pages, the staff case API, dashboard, admin."""

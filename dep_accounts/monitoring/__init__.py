"""What monitoring systems and calendars read: /metrics and the token expiry calendar feed."""

"""The MDM push (APNs) certificate: request, intake, verdict and expiry."""

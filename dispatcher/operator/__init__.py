"""What operators and upstream teams do besides running the service: plan, count, edit, report."""

"""Apps and Books content tokens: the verdict, the intake, and their state with Apple."""

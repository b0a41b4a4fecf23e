"""DeathStarBench's social-network workload against TerraScale, with ceilings and reports."""

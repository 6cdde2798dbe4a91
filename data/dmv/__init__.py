"""California DMV autonomous-vehicle disengagement and mileage reports: import and rates."""

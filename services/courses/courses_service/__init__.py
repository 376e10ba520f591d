"""The Unpuzzle courses service: catalog, course building, enrollments, progress, reviews."""

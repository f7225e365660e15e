"""Layer 7, the applications (lessons 09a-09c): FAQ retrieval, news monitoring and
recommendation, with their small data files in `applications/data/`.
May import every layer below it."""

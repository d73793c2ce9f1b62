"""Storage: SQLAlchemy 2.0 models, the database handle, migrations and repositories returning records.

Nothing outside ``engine/db`` sees an ORM object or a session it did not get from ``Database``.
"""

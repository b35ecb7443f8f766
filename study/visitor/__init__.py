"""The public demo's own logic (no database): the mini study and its image viewer."""

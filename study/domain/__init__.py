"""The study's rules and records: cases, readers, designs, the workflow, the audit trail."""

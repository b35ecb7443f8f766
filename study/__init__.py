"""The reader study: data, designs, workflow, analysis and reports. Never imports Streamlit."""

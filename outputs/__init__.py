"""A run's outputs: write a backtest's tables and HTML report into its directory, and read a finished run back.

Above backtest/ and reports/ (it joins their types: a BacktestResult + Evaluation becomes a ReportInput), below
tasks/ (the write-outputs tasks call it) and the CLI (`pricecast report` re-renders a stored run with it).
"""

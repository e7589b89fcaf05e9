"""Renders backtest tables into the HTML report and Markdown for Prefect artifacts (reads tables, never models).

    reports.data      ReportInput (every table of one backtest run), column names, what each metric means
    reports.verdict   verdict(leaderboard, dm): the one-sentence answer at the top of every report
    reports.diagnosis "Did covariates or tuning help?": variants vs plain and naive, a sentence per model, Markdown
    reports.html      render_html(data, out_path): one offline HTML file (plotly.js beside it or inlined)
    reports.markdown  summary_markdown(data), leaderboard_records(leaderboard): Prefect artifacts
    reports.export    export_csv(tables, out_dir): a CSV per table

Nothing is imported here, so `import reports` stays cheap (plotly and jinja2 load with reports.html).
"""

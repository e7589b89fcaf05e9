"""Rolling-origin backtests: fold plan, engine with refit policies, metrics, Diebold-Mariano, trading evaluation."""

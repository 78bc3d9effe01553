"""A renderer of docs/grafana/botkit.json without Grafana: its panels' PromQL evaluated by a real
Prometheus over a short load run of the clinic bot, drawn in Chromium (scripts/dashboard-screenshot)."""

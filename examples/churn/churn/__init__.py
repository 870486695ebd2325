"""The churn example: synthetic but realistic subscription data and a training step."""

"""Prefect @flow definitions: typed parameters and composition only, no maths."""

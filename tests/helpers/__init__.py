"""Test equipment shared by the test modules (no tests here)."""

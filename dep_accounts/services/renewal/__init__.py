"""Renewing server tokens beyond a single upload.

batch: many .p7m files at once, each matched to the account it renews (Bulk renewal).
watch: the old token watched with Apple while an admin downloads the new one (guarded renewal).
"""

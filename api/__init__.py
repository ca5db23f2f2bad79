"""Every REST door: Mistral's /v2 API (views, urls, resources, listing), the
signed callback URLs (callback_views) and Gust's /api for approvals
(approval_views). Reads through workflows.selectors, writes through the
apps' services."""

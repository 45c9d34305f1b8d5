-- Reserved for issue 8 (0014_webhooks); filled in by its change. Placeholder so versions stay contiguous.
SELECT 1;

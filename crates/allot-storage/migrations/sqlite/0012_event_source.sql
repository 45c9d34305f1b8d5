-- Reserved for issue 8 (0012_event_source); filled in by its change. Placeholder so versions stay contiguous.
SELECT 1;

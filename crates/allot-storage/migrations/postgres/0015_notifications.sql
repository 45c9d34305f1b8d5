-- Reserved for issue 8 (0015_notifications); filled in by its change. Placeholder so versions stay contiguous.
SELECT 1;

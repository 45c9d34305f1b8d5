-- Reserved for issue 8 (0013_personal_data); filled in by its change. Placeholder so versions stay contiguous.
SELECT 1;

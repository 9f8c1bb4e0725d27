-- reactor.calculate_next_schedule: the seed's cases (weekly Friday 06:00 from Monday and
-- from Friday afternoon, daily, every_n_hours, once), time zones and daylight saving.
BEGIN;
SELECT plan(44);

-- The seed's weekly cases (scheduler_config.timezone is UTC by default)
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 5, "hour": 6, "minute": 0}', '2025-01-06 10:00:00-06'),
          '2025-01-10 06:00:00+00'::timestamptz, 'weekly Friday 06:00 from Monday: that Friday');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 5, "hour": 6, "minute": 0}', '2025-01-10 14:00:00-06'),
          '2025-01-17 06:00:00+00'::timestamptz, 'weekly Friday 06:00 from Friday afternoon: next Friday');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 5, "hour": 6, "minute": 0}', '2025-01-10 05:59:59+00'),
          '2025-01-10 06:00:00+00'::timestamptz, 'from Friday before 06:00: the same day');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 5, "hour": 6, "minute": 0}', '2025-01-10 06:00:00+00'),
          '2025-01-17 06:00:00+00'::timestamptz, 'from exactly Friday 06:00: the next week (strictly after)');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 5, "hour": 6, "minute": 0}', '2025-01-11 00:00:00+00'),
          '2025-01-17 06:00:00+00'::timestamptz, 'from Saturday: the coming Friday');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 0, "hour": 9, "minute": 15}', '2025-01-11 12:00:00+00'),
          '2025-01-12 09:15:00+00'::timestamptz, 'day 0 is Sunday');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 6, "hour": 23, "minute": 59}', '2025-01-12 00:00:00+00'),
          '2025-01-18 23:59:00+00'::timestamptz, 'day 6 is Saturday');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 4, "hour": 20, "minute": 0}', '2025-01-09 19:00:00+00'),
          '2025-01-09 20:00:00+00'::timestamptz, 'the seed''s weekly_trends: Thursday 20:00');

-- daily
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 20, "minute": 0}', '2025-01-06 10:00:00+00'),
          '2025-01-06 20:00:00+00'::timestamptz, 'daily 20:00 from the morning: the same evening');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 20, "minute": 0}', '2025-01-06 20:00:00+00'),
          '2025-01-07 20:00:00+00'::timestamptz, 'daily 20:00 from 20:00: the next day');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 20, "minute": 0}', '2025-12-31 21:00:00+00'),
          '2026-01-01 20:00:00+00'::timestamptz, 'daily across the new year');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 7}', '2025-01-06 10:00:00+00'),
          '2025-01-07 07:00:00+00'::timestamptz, 'a missing minute means :00');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 0, "minute": 30}', '2024-02-28 23:00:00+00'),
          '2024-02-29 00:30:00+00'::timestamptz, 'daily into a leap day');

-- every_n_hours
SELECT is(reactor.calculate_next_schedule('every_n_hours', '{"hours": 2}', '2025-01-06 10:17:03.5+00'),
          '2025-01-06 12:17:03.5+00'::timestamptz, 'every 2 hours: from_time + 2 h');
SELECT is(reactor.calculate_next_schedule('every_n_hours', '{"hours": 1.5}', '2025-01-06 10:00:00+00'),
          '2025-01-06 11:30:00+00'::timestamptz, 'fractional hours are allowed');
SELECT is(reactor.calculate_next_schedule('every_n_hours', '{"hours": 48}', '2025-01-06 10:00:00+00'),
          '2025-01-08 10:00:00+00'::timestamptz, '48 hours');

-- once
SELECT is(reactor.calculate_next_schedule('once', '{}', '2025-01-06 10:00:00+00'), NULL, 'once: NULL');
SELECT is(reactor.calculate_next_schedule('once', NULL, NULL), NULL, 'once needs no configuration: NULL');

-- Errors
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('monthly', '{}', now())$$,
                 '22023', 'unknown frequency_type ''monthly''; expected weekly, daily, every_n_hours or once',
                 'an unknown frequency type');
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('weekly', '{"hour": 6}', now())$$,
                 '22023', 'weekly frequency_config needs "day" (an integer from 0 to 6), got {"hour": 6}',
                 'weekly without day');
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('weekly', '{"day": 7, "hour": 6}', now())$$,
                 '22023', 'weekly frequency_config: "day" must be an integer from 0 to 6, got 7', 'day 7');
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('daily', '{"hour": "6"}', now())$$,
                 '22023', 'daily frequency_config: "hour" must be an integer from 0 to 23, got "6"', 'hour as a string');
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('daily', '{"hour": 6.5}', now())$$,
                 '22023', 'daily frequency_config: "hour" must be an integer from 0 to 23, got 6.5', 'a fractional hour');
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('daily', '{"hour": 6, "minute": 60}', now())$$,
                 '22023', 'daily frequency_config: "minute" must be an integer from 0 to 59, got 60', 'minute 60');
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('every_n_hours', '{"hours": -2}', now())$$,
                 '22023', 'every_n_hours frequency_config needs "hours" (a number above 0, at most 87600), got {"hours": -2}',
                 'negative hours');
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('daily', NULL, now())$$,
                 '22023', 'daily frequency_config must be a JSON object, got NULL', 'a recurring job needs a configuration');
SELECT throws_ok($$SELECT reactor.calculate_next_schedule('daily', '{"hour": 6}', NULL)$$,
                 '22023', 'calculate_next_schedule: from_time must be a finite time, got NULL', 'NULL from_time');

-- Wall-clock times are read in scheduler_config.timezone, whatever the session's zone
UPDATE reactor.scheduler_config SET timezone = 'Europe/Berlin';
SET LOCAL TIME ZONE 'Asia/Tokyo';
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 6, "minute": 0}', '2025-01-06 10:00:00+00'),
          '2025-01-07 05:00:00+00'::timestamptz, 'Europe/Berlin in winter: 06:00 is 05:00 UTC');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 6, "minute": 0}', '2025-07-06 10:00:00+00'),
          '2025-07-07 04:00:00+00'::timestamptz, 'Europe/Berlin in summer: 06:00 is 04:00 UTC');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 5, "hour": 0, "minute": 30}', '2025-01-09 23:15:00+00'),
          '2025-01-09 23:30:00+00'::timestamptz,
          'the weekday is the local one: Friday 00:30 in Berlin is Thursday 23:30 UTC');
SELECT is(reactor.calculate_next_schedule('every_n_hours', '{"hours": 3}', '2025-01-06 10:00:00+00'),
          '2025-01-06 13:00:00+00'::timestamptz, 'every_n_hours does not depend on the zone');
RESET TIME ZONE;

-- Daylight saving, America/New_York: 2025-03-09 02:00 EST -> 03:00 EDT, 2025-11-02 02:00 EDT -> 01:00 EST
UPDATE reactor.scheduler_config SET timezone = 'America/New_York';
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 6, "minute": 0}', '2025-03-08 17:00:00+00'),
          '2025-03-09 10:00:00+00'::timestamptz, 'spring forward: daily 06:00 stays 06:00 local (10:00 UTC, was 11:00)');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 6, "minute": 0}', '2025-03-09 10:00:00+00'),
          '2025-03-10 10:00:00+00'::timestamptz, 'the day after spring forward: 06:00 EDT');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 6, "minute": 0}', '2025-11-01 16:00:00+00'),
          '2025-11-02 11:00:00+00'::timestamptz, 'fall back: daily 06:00 stays 06:00 local (11:00 UTC, was 10:00)');
SELECT is(reactor.calculate_next_schedule('weekly', '{"day": 0, "hour": 6, "minute": 0}', '2025-03-02 12:00:00+00'),
          '2025-03-09 10:00:00+00'::timestamptz, 'weekly Sunday 06:00 across spring forward: 167 hours later, same wall clock');
SELECT is(reactor.calculate_next_schedule('every_n_hours', '{"hours": 24}', '2025-03-08 11:00:00+00'),
          '2025-03-09 11:00:00+00'::timestamptz, 'every_n_hours adds elapsed time: 24 h after 06:00 EST is 07:00 EDT');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 2, "minute": 30}', '2025-03-09 05:00:00+00'),
          '2025-03-09 07:30:00+00'::timestamptz, 'a time in the skipped hour (02:30) runs at 03:30 EDT that day');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 2, "minute": 30}', '2025-03-09 07:30:00+00'),
          '2025-03-10 06:30:00+00'::timestamptz, 'and at 02:30 EDT the day after');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 1, "minute": 30}', '2025-11-02 04:00:00+00'),
          '2025-11-02 06:30:00+00'::timestamptz, 'a time in the repeated hour (01:30) runs once, at 01:30 EST');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 1, "minute": 30}', '2025-11-02 05:45:00+00'),
          '2025-11-02 06:30:00+00'::timestamptz, 'from inside the first 01:00-02:00 the run is still the 01:30 EST one');
SELECT is(reactor.calculate_next_schedule('daily', '{"hour": 1, "minute": 30}', '2025-11-02 06:30:00+00'),
          '2025-11-03 06:30:00+00'::timestamptz, 'after it, the next day: no second run in the repeated hour');

-- Over a whole year in a zone with daylight saving: every result is strictly later, at the
-- configured local time, and no more than a day (a week) ahead.
SELECT is((SELECT count(*)::integer FROM generate_series('2025-01-01 00:00+00'::timestamptz,
                                                         '2026-01-01 00:00+00', interval '3 hours 7 minutes') AS f,
                  LATERAL (SELECT reactor.calculate_next_schedule('daily', '{"hour": 6, "minute": 15}', f) AS n) x
            WHERE NOT (n > f AND n - f <= interval '25 hours'
                       AND to_char(n AT TIME ZONE 'America/New_York', 'HH24:MI') = '06:15')),
          0, 'daily 06:15 New York over 2025: always later, within 25 h, at 06:15 local');
SELECT is((SELECT count(*)::integer FROM generate_series('2025-01-01 00:00+00'::timestamptz,
                                                         '2026-01-01 00:00+00', interval '5 hours 11 minutes') AS f,
                  LATERAL (SELECT reactor.calculate_next_schedule('weekly', '{"day": 5, "hour": 6, "minute": 0}', f) AS n) x
            WHERE NOT (n > f AND n - f <= interval '7 days 1 hour'
                       AND extract(dow FROM n AT TIME ZONE 'America/New_York') = 5
                       AND to_char(n AT TIME ZONE 'America/New_York', 'HH24:MI') = '06:00')),
          0, 'weekly Friday 06:00 New York over 2025: always later, within a week, on Friday at 06:00 local');
SELECT is((SELECT count(DISTINCT reactor.calculate_next_schedule('daily', '{"hour": 6}', f))::integer
             FROM generate_series('2025-03-01 00:00+00'::timestamptz, '2025-03-31 00:00+00', interval '1 hour') AS f),
          31, 'from every hour of March the daily run lands on one of 31 distinct times (one per day)');

SELECT * FROM finish();
ROLLBACK;

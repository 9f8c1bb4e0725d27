-- One step of a demo workload, run by pgbench clients acting as job workers:
-- new jobs arrive, workers pick the next due job, report progress, complete or fail
-- (failed jobs retry with backoff through reactor.fail_job).
DO $$
DECLARE
  r double precision := random();
  j text;
  p integer;
  e integer;
BEGIN
  IF r < 0.22 THEN
    INSERT INTO reactor.scheduled_jobs
      (id, job_type, user_id, frequency_type, frequency_config, priority, status, scheduled_for,
       retry_on_failure, retry_max_attempts, retry_backoff_seconds)
    VALUES ('demo_' || substr(md5(random()::text || clock_timestamp()::text), 1, 12),
            (ARRAY['weekly_generation', 'auto_sync', 'daily_advisor', 'weekly_trends'])[1 + floor(random() * 4)::int],
            'user_' || (1 + floor(random() * 3)::int),
            'once', '{}',
            (ARRAY['critical', 'high', 'medium', 'low'])[1 + floor(random() * 4)::int],
            'pending', now() + make_interval(secs => floor(random() * 3)), true, 3, 2);
  ELSIF r < 0.45 THEN
    j := reactor.get_next_pending_job();
    IF j IS NOT NULL THEN
      PERFORM reactor.start_job(j, 'scheduled');
    END IF;
  ELSE
    SELECT id, coalesce(progress_percent, 0) INTO j, p
      FROM reactor.scheduled_jobs
     WHERE status = 'running'
     ORDER BY random() LIMIT 1
       FOR UPDATE SKIP LOCKED;
    IF j IS NULL THEN
      RETURN;
    END IF;
    IF p >= 75 OR random() < 0.08 THEN
      SELECT max(id) INTO e FROM reactor.job_executions WHERE job_id = j;
      IF random() < 0.2 THEN
        PERFORM reactor.fail_job(j, e, 'upstream timed out (demo)');
      ELSE
        PERFORM reactor.complete_job(j, e, jsonb_build_object('items', floor(random() * 100)::int));
      END IF;
    ELSE
      PERFORM reactor.update_job_progress(j, p + 25, 'step ' || (p / 25 + 1) || ' of 4');
    END IF;
  END IF;
END
$$;

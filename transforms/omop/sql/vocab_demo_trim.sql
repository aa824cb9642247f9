-- Keep only demo relationships whose two concepts and relationship are loaded (see vocabulary._load_demo).
INSERT INTO {schema}.concept_relationship
SELECT r.*
FROM temp.main._demo_concept_relationship r
WHERE r.concept_id_1 IN (SELECT concept_id FROM {schema}.concept)
  AND r.concept_id_2 IN (SELECT concept_id FROM {schema}.concept)
  AND r.relationship_id IN (SELECT relationship_id FROM {schema}.relationship);

"""The platforms' own event formats (IMS Caliper, SCORM Cloud postbacks, Canvas Live Events): one module each with
its payload model and its mapping into `mapped.MappedEvent`, the change the connector applies to one activity."""
